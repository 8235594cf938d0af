//! What fits nowhere else yet.
