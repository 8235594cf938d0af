//! Unix sockets: descriptors passed with SCM_RIGHTS, peer credentials, socket pairs.
