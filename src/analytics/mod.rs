//! The dashboard's analytics: insights and drift, accuracy against
//! corrections, the poster map, business impact.

pub mod accuracy;
pub mod impact;
pub mod insights;
pub mod map;
