/*
 * proc.c: start, watch and stop the child processes of integration tests,
 * and the small loopback/temp-dir chores around them. See proc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "helpers/proc.h"

extern char **environ;

static long long
proc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
proc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* 1 when entry ("K=V") sets a key that one of env also sets. */
static int
proc_env_overridden(const char *entry, const char *const *env)
{
    size_t klen = strcspn(entry, "=");
    size_t i;

    for (i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], entry, klen) == 0 && env[i][klen] == '=') {
            return 1;
        }
    }
    return 0;
}

/* environ plus env, env winning. The array is malloc'ed, the strings borrowed. */
static char **
proc_merge_env(const char *const *env)
{
    size_t n = 0, m = 0, i, j = 0;
    char **out;

    while (environ != NULL && environ[n] != NULL) {
        n++;
    }
    while (env != NULL && env[m] != NULL) {
        m++;
    }
    out = calloc(n + m + 1, sizeof(*out));
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if (!proc_env_overridden(environ[i], env)) {
            out[j++] = environ[i];
        }
    }
    for (i = 0; i < m; i++) {
        out[j++] = (char *)env[i];
    }
    return out;
}

/* In the child: stdio to the log, no inherited descriptors, then exec. */
static void
proc_exec_child(int logfd, const char *const *argv, char **envp, pid_t parent)
{
    int nullfd;

    /* Die with the test: a test that crashes in its setup never runs its
     * teardown, and its Redis, simulator or gateway would hold their ports
     * (and the CI machine) after it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(127);
    }
    nullfd = open("/dev/null", O_RDONLY);

    if (nullfd >= 0) {
        dup2(nullfd, STDIN_FILENO);
    }
    dup2(logfd, STDOUT_FILENO);
    dup2(logfd, STDERR_FILENO);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    signal(SIGPIPE, SIG_DFL);
    execve(argv[0], (char *const *)argv, envp);
    dprintf(STDERR_FILENO, "proc: execve %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int
proc_start(struct proc *p, const char *const *argv, const char *const *env, const char *log_path)
{
    char **envp;
    int logfd;
    pid_t pid, parent;

    p->pid = 0;
    if (argv == NULL || argv[0] == NULL || log_path == NULL ||
        strlen(log_path) >= sizeof(p->log_path)) {
        return -1;
    }
    snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
    logfd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (logfd < 0) {
        return -1;
    }
    envp = proc_merge_env(env);
    if (envp == NULL) {
        close(logfd);
        return -1;
    }
    parent = getpid();
    pid = fork();
    if (pid == 0) {
        proc_exec_child(logfd, argv, envp, parent);
    }
    free(envp);
    close(logfd);
    if (pid < 0) {
        return -1;
    }
    p->pid = pid;
    return 0;
}

static int
proc_try_connect(int port)
{
    struct sockaddr_in sin;
    int fd, rc;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
    close(fd);
    return rc;
}

int
proc_wait_port(int port, int timeout_ms)
{
    long long deadline = proc_now_ms() + timeout_ms;

    for (;;) {
        if (proc_try_connect(port) == 0) {
            return 0;
        }
        if (proc_now_ms() >= deadline) {
            return -1;
        }
        proc_sleep_ms(20);
    }
}

int
proc_wait_unix(const char *path, int timeout_ms)
{
    long long deadline = proc_now_ms() + timeout_ms;
    struct stat sb;

    for (;;) {
        if (stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
            return 0;
        }
        if (proc_now_ms() >= deadline) {
            return -1;
        }
        proc_sleep_ms(20);
    }
}

/*
 * A stopped child would hold sig until continued, so SIGCONT follows any
 * signal other than SIGKILL and SIGSTOP.
 */
int
proc_stop(struct proc *p, int sig, int timeout_ms)
{
    long long deadline = proc_now_ms() + timeout_ms;
    int status = 0;
    pid_t r;

    if (p->pid <= 0) {
        return -1;
    }
    kill(p->pid, sig);
    if (sig != SIGKILL && sig != SIGSTOP) {
        kill(p->pid, SIGCONT);
    }
    for (;;) {
        r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR)) {
            break;
        }
        if (proc_now_ms() >= deadline) {
            kill(p->pid, SIGKILL);
            while ((r = waitpid(p->pid, &status, 0)) < 0 && errno == EINTR) {
            }
            break;
        }
        proc_sleep_ms(10);
    }
    p->pid = 0;
    return r < 0 ? -1 : status;
}

int
proc_alive(struct proc *p)
{
    int status;
    pid_t r;

    if (p->pid <= 0) {
        return 0;
    }
    r = waitpid(p->pid, &status, WNOHANG);
    if (r == 0) {
        return 1;
    }
    p->pid = 0;
    return 0;
}

/*
 * Ports come from 20000-32767, below Linux's ephemeral range: a port the
 * kernel hands out for bind(0) is ephemeral, and between our close() and the
 * child's bind() it can become the local end of some outgoing connection.
 * A port is taken only if it binds now; seeded per process, so concurrent
 * test processes draw different sequences.
 */
int
proc_free_port(void)
{
    static unsigned int seed;
    struct sockaddr_in sin;
    int fd, port, tries, one = 1;

    if (seed == 0) {
        /* Not pid ^ time: two workers forked a millisecond apart with
         * consecutive pids got the same seed, and so the same ports. */
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed) || seed == 0) {
            seed = (unsigned int)getpid() * 2654435761u + (unsigned int)proc_now_ms() * 40503u + 1;
        }
    }
    for (tries = 0; tries < 500; tries++) {
        port = 20000 + (int)(rand_r(&seed) % 12768);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return -1;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(fd, 1) == 0) {
            close(fd);
            return port;
        }
        close(fd);
    }
    return -1;
}

int
proc_tmpdir(char *out, size_t outlen)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    int n;

    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    n = snprintf(tmpl, sizeof(tmpl), "%s/cgtest.XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof(tmpl) || (size_t)n >= outlen) {
        return -1;
    }
    if (mkdtemp(tmpl) == NULL) {
        return -1;
    }
    memcpy(out, tmpl, (size_t)n + 1);
    return 0;
}

static int
proc_rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    remove(path);
    return 0;
}

/* Only directories made by proc_tmpdir() ("cgtest." in the name) are removed. */
void
proc_rmdir(const char *dir)
{
    if (dir == NULL || dir[0] == '\0' || strstr(dir, "/cgtest.") == NULL) {
        return;
    }
    nftw(dir, proc_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void
proc_dump_log(const char *path, size_t max)
{
    char buf[4096];
    off_t size, start;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "proc: no log at %s\n", path);
        return;
    }
    size = lseek(fd, 0, SEEK_END);
    start = size > (off_t)max ? size - (off_t)max : 0;
    lseek(fd, start, SEEK_SET);
    fprintf(stderr, "---- last %lld bytes of %s ----\n", (long long)(size - start), path);
    fflush(stderr);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
            break;
        }
    }
    fprintf(stderr, "---- end of %s ----\n", path);
    close(fd);
}
