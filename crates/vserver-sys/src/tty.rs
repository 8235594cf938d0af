//! Terminals: pseudo-terminal pairs, window sizes, terminal modes, the controlling terminal.
