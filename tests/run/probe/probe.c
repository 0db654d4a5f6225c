/*
 * tests/run/probe/probe.c - stand-ins for the adapters, built under their
 * file names in a directory of their own (FLIGHTREC_ADAPTER_DIR), so that
 * the choice `flightrec run` makes is tested on its own: which files it puts
 * in LD_PRELOAD and that the loader maps them. They record nothing; the real
 * adapters are tested by their own suite.
 */
int flightrec_run_probe(void);

int flightrec_run_probe(void)
{
    return 1;
}
