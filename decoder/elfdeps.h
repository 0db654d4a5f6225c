/*
 * decoder/elfdeps.h - which event-loop libraries a program will load, read
 * from its ELF dynamic section without running it (`flightrec run`).
 */
#ifndef FRD_ELFDEPS_H
#define FRD_ELFDEPS_H

#include <stddef.h>

/* Libraries of interest found in the dependency closure. */
#define FRD_DEP_UV 1u    /* libuv.so.1 */
#define FRD_DEP_EVENT 2u /* libevent-2.1.so.7 or libevent_core-2.1.so.7 */

/* What kind of file the command is. */
enum frd_exe_kind {
    FRD_EXE_DYNAMIC = 0, /* a dynamically linked ELF of this machine: deps are known */
    FRD_EXE_STATIC,      /* an ELF with no dynamic section: LD_PRELOAD does nothing */
    FRD_EXE_SCRIPT,      /* starts with "#!": what it runs is decided at run time */
    FRD_EXE_FOREIGN,     /* an ELF of another class or machine */
    FRD_EXE_OTHER,       /* unreadable or not ELF (the shell would run it with sh) */
};

struct frd_deps {
    enum frd_exe_kind kind;
    unsigned found;    /* FRD_DEP_* seen in the closure */
    unsigned unfound;  /* DT_NEEDED names that resolved to no file */
    unsigned objects;  /* objects read (the program and each library once) */
    int truncated;     /* the walk stopped at its bound (FRD_DEPS_MAX objects) */
};

#define FRD_DEPS_MAX 512 /* libraries followed at most: bounds a hostile chain */

/*
 * frd_elf_deps - walk @path's DT_NEEDED closure the way the dynamic loader
 * would find each library: DT_RPATH (of the needing object and its loaders,
 * when it has no DT_RUNPATH), $LD_LIBRARY_PATH, DT_RUNPATH, the directories
 * of /etc/ld.so.conf, then the system directories ($ORIGIN is expanded; other
 * dynamic-string tokens make that entry unusable). Nothing is executed.
 * @ld_library_path: the value the command will run with, or NULL.
 * Return: 0 and *@out filled; kind tells whether `found` is meaningful.
 */
int frd_elf_deps(const char *path, const char *ld_library_path, struct frd_deps *out);

#endif /* FRD_ELFDEPS_H */
