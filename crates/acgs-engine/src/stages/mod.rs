//! The fourteen stages of the guarded path (DESIGN.md §2), one module each, run in this order by
//! the driver (`crate::driver`):
//!
//! 1. [`resolve`] the model; 2. [`validate`] parameters; 3. [`inspect`] every text field;
//! 4. [`template`] the request; 5. [`price`] it; 6. [`authorize`] the spend; 7. [`rate_limit`];
//! 8. [`upload`] local inputs; 9. [`submit`]; 10. [`wait`]; 11. [`check_output`]; 12. [`settle`];
//! 13. [`store`]; 14. [`audit`].

pub mod audit;
pub mod authorize;
pub mod check_output;
pub mod inspect;
pub mod price;
pub mod rate_limit;
pub mod resolve;
pub mod settle;
pub mod store;
pub mod submit;
pub mod template;
pub mod upload;
pub mod validate;
pub mod wait;
