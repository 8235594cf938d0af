//! Waiting for descriptors: poll(2) and epoll(7).
