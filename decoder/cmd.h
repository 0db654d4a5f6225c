/*
 * decoder/cmd.h - the `flightrec` subcommands that live outside main.c.
 *
 * Each takes the arguments after its name and returns the exit status:
 * 0 success, 1 failure (the message names what and where), 2 usage error.
 */
#ifndef FRD_CMD_H
#define FRD_CMD_H

/* "flightrec: " + @fmt (one %s, @arg) + newline + @usage on stderr; returns 2. */
int frd_usage_error(const char *usage, const char *fmt, const char *arg);

/* flightrec dump PID [--dir DIR] [--timeout S] [--signal SIG] */
int frd_cmd_dump(int argc, char **argv);

/* flightrec run [--dir DIR] [--stall-ms N] [--signal SIG] -- CMD [ARGS...];
 * returns only when CMD could not be executed */
int frd_cmd_run(int argc, char **argv);
/* frd_process_alive - process @pid exists and is not a zombie (killed, not
 * yet reaped: it writes nothing more). From /proc/PID/stat; a file we may
 * not open (hidepid) counts as alive. (cmd_dump.c) */
int frd_process_alive(long pid);

/* flightrec recover FILE|PID [--dir DIR] [--force] (cmd_recover.c) */
int frd_cmd_recover(int argc, char **argv);

#endif /* FRD_CMD_H */
