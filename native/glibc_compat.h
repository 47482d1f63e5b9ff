// Keep the prebuild loadable on glibc 2.28 (RHEL 8, Ubuntu 20.04, Debian 10) although it is built on a
// newer glibc: symbols that moved into libc in 2.34 would otherwise bind to GLIBC_2.34. The old
// versions still exist in every later glibc. Measured with `objdump -T`; see test/package/prebuild.test.ts.
#pragma once

#if defined(__linux__) && defined(__x86_64__) && defined(__GLIBC__)
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
__asm__(".symver dlinfo,dlinfo@GLIBC_2.3.3");
__asm__(".symver pthread_once,pthread_once@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_lock,pthread_mutex_lock@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_unlock,pthread_mutex_unlock@GLIBC_2.2.5");
#endif
