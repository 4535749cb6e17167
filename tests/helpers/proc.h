/*
 * proc.h: child processes for integration tests (redis-server, the vendor
 * simulator, the callgate daemon), all on loopback, each with its output in
 * a log file, stopped by PID.
 */
#ifndef CG_TEST_PROC_H
#define CG_TEST_PROC_H

#include <sys/types.h>

struct proc {
    pid_t pid;           /* 0 when not running */
    char log_path[512];  /* stdout+stderr of the child */
};

/*
 * Start argv[0] (a path) with argv, extra environment entries env ("K=V",
 * NULL-terminated, may be NULL) added to the current environment, stdout and
 * stderr appended to log_path. Returns 0 or -1.
 */
int proc_start(struct proc *p, const char *const *argv, const char *const *env,
               const char *log_path);

/* Wait until something accepts TCP connections on 127.0.0.1:port, up to timeout_ms. 0 or -1. */
int proc_wait_port(int port, int timeout_ms);

/* Wait until path exists and is a socket, up to timeout_ms. 0 or -1. */
int proc_wait_unix(const char *path, int timeout_ms);

/*
 * Send sig and wait up to timeout_ms for the child to exit; SIGKILL after
 * that. Returns the exit status as waitpid() encodes it, or -1. p->pid = 0.
 */
int proc_stop(struct proc *p, int sig, int timeout_ms);

/* 1 while the child is alive (reaps it if it died), else 0. */
int proc_alive(struct proc *p);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read, close). */
int proc_free_port(void);

/* Make a fresh temporary directory (mkdtemp under $TMPDIR or /tmp) into out. 0 or -1. */
int proc_tmpdir(char *out, size_t outlen);

/* rm -r of a directory made by proc_tmpdir(). */
void proc_rmdir(const char *dir);

/* Print the last max bytes of a log file to stderr (for failed tests). */
void proc_dump_log(const char *path, size_t max);

#endif
