//! The OpenAPI 3.1 document of the API, served at `/v1/openapi.json`, written by hand beside the
//! routes it describes (`api::router`).

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document.
#[must_use]
pub fn document() -> Value {
    let job_body = json!({"$ref": "#/components/schemas/JobRequest"});
    let job = json!({"$ref": "#/components/schemas/Job"});
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "acgs service", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "JobRequest": {"type": "object", "required": ["model"], "additionalProperties": false, "properties": {
                    "model": {"type": "string"}, "prompt": {"type": "string"}, "negative_prompt": {"type": "string"},
                    "text": {"type": "string"}, "params": {"type": "object"}, "n": {"type": "integer", "minimum": 1},
                    "inputs": {"type": "object", "description": "upload ids by the key that takes them: image, video, audio, images"},
                    "max_cost_usd": {"type": "string", "description": "a decimal amount; the job is refused if its worst case is higher"},
                    "tags": {"type": "array", "maxItems": 8, "items": {"type": "string"}, "description": "budgets the job also counts against; each needs a limit an admin set"},
                    "callback_url": {"type": "string", "format": "uri", "description": "https URL to post the final state to, signed (Standard Webhooks) with your callback secret; private, loopback and link-local addresses are refused"}}},
                "Job": {"type": "object", "required": ["id", "status", "estimate"], "properties": {
                    "id": {"type": "string"}, "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
                    "estimate": {"type": "string"}, "actual": {"type": ["string", "null"]}, "run_id": {"type": ["string", "null"]},
                    "outputs": {"type": ["array", "null"], "items": {"type": "string"}},
                    "error": {"type": ["object", "null"]}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"security": [], "responses": {"200": {"description": "the records answer"}}}},
            "/v1/openapi.json": {"get": {"security": [], "responses": {"200": {"description": "this document"}}}},
            "/metrics": {"get": {"security": [], "responses": {"200": {"description": "Prometheus text: jobs by state, queue age, settled total"}}}},
            "/v1/estimate": {"post": {"requestBody": {"content": {"application/json": {"schema": job_body}}},
                "responses": {"200": {"description": "the worst case; nothing reserved"}, "401": error_response("no valid token"),
                              "422": error_response("refused by validation or the guard")}}},
            "/v1/jobs": {"post": {"parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": job_body}}},
                "responses": {"202": {"description": "queued (or the job this key already made)", "content": {"application/json": {"schema": job}}},
                              "400": error_response("not the JSON this route takes"), "401": error_response("no valid token"),
                              "402": error_response("its worst case is above max_cost_usd"), "413": error_response("body too large"),
                              "422": error_response("refused by validation or the guard"), "429": error_response("too many jobs queued or running")}}},
            "/v1/jobs/{id}": {
                "get": {"parameters": id, "responses": {"200": {"description": "the job", "content": {"application/json": {"schema": job}}},
                        "404": error_response("no such job of yours")}},
                "delete": {"parameters": id, "responses": {"202": {"description": "cancelled, or being cancelled"},
                        "404": error_response("no such job of yours")}}},
            "/v1/jobs/{id}/events": {"get": {"parameters": id, "responses": {"200": {"description":
                "server-sent events, one per change of state, ending with done, failed or cancelled",
                "content": {"text/event-stream": {}}}, "404": error_response("no such job of yours")}}},
            "/v1/spend": {"get": {"responses": {"200": {"description": "your own budgets: spent and limit of each"}}}},
            "/v1/admin/users/{name}": {
                "get": {"parameters": name.clone(), "responses": {"200": {"description": "the user's budgets"}, "403": error_response("not an admin")}},
                "put": {"parameters": name.clone(), "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["daily"],
                    "properties": {"daily": {"type": "string"}, "weekly": {"type": "string"}, "monthly": {"type": "string"}, "admin": {"type": "boolean"}}}}}},
                    "responses": {"200": {"description": "added or changed"}, "403": error_response("not an admin")}}},
            "/v1/admin/users/{name}/tokens": {"post": {"parameters": name, "responses": {"201": {"description": "{id, token}: the token, shown once"}, "403": error_response("not an admin")}}},
            "/v1/admin/tokens/{id}": {"delete": {"parameters": id.clone(), "responses": {"200": {"description": "revoked"}, "404": error_response("no live token")}}},
            "/v1/admin/limits": {"get": {"responses": {"200": {"description": "every limit: scope (service or tag:NAME), period, amount"}, "403": error_response("not an admin")}}},
            "/v1/admin/limits/{scope}/{period}": {
                "put": {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "string"}}}}}},
                    "responses": {"200": {"description": "the limits now"}, "400": error_response("not service or tag:NAME, or not daily, weekly or monthly")}},
                "delete": {"responses": {"200": {"description": "the limits now"}}}},
            "/v1/pipelines": {"post": {"parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["pipeline"], "additionalProperties": false, "properties": {
                    "pipeline": {"type": "string", "description": "the pipeline file's YAML (at most 1 MiB)"},
                    "inputs": {"type": "object", "additionalProperties": {"type": "string"}, "description": "by name; an upload id (file_…) stands for that file"},
                    "max_cost_usd": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}, "callback_url": {"type": "string"}}}}}},
                "responses": {"202": {"description": "queued as one job, priced whole", "content": {"application/json": {"schema": job.clone()}}},
                              "402": error_response("its worst case is above max_cost_usd"), "422": error_response("the file's problems")}}},
            "/v1/webhooks/fal": {"post": {"security": [], "responses": {"200": {"description": "verified against fal's published keys"}, "401": error_response("unsigned, stale or not signed by fal")}}},
            "/v1/callback-secret": {"get": {"responses": {"200": {"description": "{secret}: the whsec_ secret your jobs' callbacks are signed with"}}}},
            "/v1/files": {"post": {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}},
                "responses": {"201": {"description": "kept: {id, content_type, bytes}"}, "400": error_response("not media acgs knows"),
                              "413": error_response("larger than the upload cap")}}},
            "/v1/files/{id}": {"get": {"parameters": id.clone(), "responses": {"200": {"description": "the file"}, "404": error_response("no such file of yours")}}},
            "/v1/jobs/{id}/outputs/{name}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file", "content": {"application/octet-stream": {}}},
                              "404": error_response("no such job or file of yours")}}},
        },
    })
}
