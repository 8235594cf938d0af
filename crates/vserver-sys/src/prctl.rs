//! prctl(2) and process attributes: no_new_privs, the parent-death signal, dumpable, personality.
