//! Landlock: rulesets and the scoping of abstract unix sockets.
