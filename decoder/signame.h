/*
 * decoder/signame.h - signal names as FLIGHTREC_SIGNAL spells them:
 * "USR2", "SIGUSR2", "usr2", "12", "RTMIN+3", "RTMAX-1".
 */
#ifndef FRD_SIGNAME_H
#define FRD_SIGNAME_H

/*
 * frd_signal_parse - the signal number @s names (the "SIG" prefix and case
 * are optional; RTMIN+N and RTMAX-N count from this system's real-time
 * range). Return: 1..64, or -1 if @s names no signal.
 */
int frd_signal_parse(const char *s);

/*
 * frd_signal_dumpable - can @sig be a dump signal? Not KILL and STOP (they
 * cannot be caught) nor the signals the crash handler takes (SEGV, BUS, ILL,
 * FPE, ABRT, TRAP, SYS). Return: 1 or 0.
 */
int frd_signal_dumpable(int sig);

/* frd_signal_spell - "USR1", "RTMIN+3", ... into @buf (@len >= 16). */
const char *frd_signal_spell(int sig, char *buf, unsigned len);

#endif /* FRD_SIGNAME_H */
