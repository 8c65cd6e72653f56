//! The fourteen stages of the guarded path (DESIGN.md §2), one module each, run in this order by
//! the driver (`crate::driver`):
//!
//! 1. [`resolve`] the model; 2. [`validate`] parameters; 3. [`inspect`] every text field;
//! 4. [`template`] the request; 5. [`price`] it; 6. [`authorize`] the spend; 7. [`rate_limit`];
//! 8. [`upload`] local inputs; 9. [`submit`]; 10. [`wait`]; 11. [`check_output`]; 12. [`settle`];
//! 13. [`store`]; 14. [`audit`].

pub(crate) mod audit;
pub(crate) mod authorize;
pub(crate) mod check_output;
pub(crate) mod inspect;
pub(crate) mod price;
pub(crate) mod rate_limit;
pub(crate) mod resolve;
pub(crate) mod settle;
pub(crate) mod store;
pub(crate) mod submit;
pub(crate) mod template;
pub(crate) mod upload;
pub(crate) mod validate;
pub(crate) mod wait;
