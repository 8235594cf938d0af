//! (item 5, below)
