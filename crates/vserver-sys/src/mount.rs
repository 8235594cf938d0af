//! Mounts: mount(2), umount2(2), pivot_root(2), mount_setattr(2), mknod(2) of device nodes.
