/*
 * workers.h: --workers N. The first process becomes a supervisor that forks
 * N workers, each a whole gateway with its own event loop, listening on the
 * same ports through SO_REUSEPORT (the kernel spreads new connections over
 * them). The supervisor serves nothing itself: it forwards SIGTERM/SIGINT
 * (drain) and SIGHUP (reload) to the workers, starts a worker again when one
 * exits while it is not draining (with a back-off when they keep dying
 * young), and exits once every worker has exited.
 */
#ifndef CG_WORKERS_H
#define CG_WORKERS_H

/* Upper bound of --workers. */
#define WORKERS_MAX 256

/*
 * Fork n workers (2..WORKERS_MAX) and supervise them. Returns 1 in a worker,
 * with *index its slot (0..n-1, kept across restarts), which then goes on to
 * build its gateway. Returns 0 in the supervisor once every worker is gone,
 * with *status the process exit status: 0 when all drained and exited 0, 1
 * otherwise (a worker that failed at its drain, or that kept dying young so
 * the supervisor gave up). Call with no event loop and no thread yet.
 */
int workers_run(int n, int *index, int *status);

/*
 * In a worker: SIGTERM, SIGINT and SIGHUP were kept blocked (pending, not
 * lost) since the fork; unblock them once the gateway's handlers are in place.
 */
void workers_signals_ready(void);

#endif
