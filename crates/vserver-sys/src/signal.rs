//! Signals: masks, dispositions, signalfd, sending signals.
