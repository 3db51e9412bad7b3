//! What the offline commands (`marquee train`, `eval`, `bench`) work on:
//! labelled poster sets and a disk cache of their backbone features, so a
//! retrain after the first run takes seconds. The daemon never uses it.

pub mod dataset;
pub mod feature_cache;
