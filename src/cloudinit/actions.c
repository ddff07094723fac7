/* actions: the operations cairn-cloudinit hands to the system (systemctl, useradd, chpasswd,
 * hostnamectl). With --systemctl-log each one is appended to the log file as one line instead
 * (spec 8.12), which is how the tests see them; nothing is executed then. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cloudinit.h"
#include "common/err.h"
#include "common/log.h"

static int append_line(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    size_t len = strlen(line);
    int rc = 0;
    if (write(fd, line, len) != (ssize_t)len || write(fd, "\n", 1) != 1) rc = -EIO;
    if (fsync(fd) != 0 && rc == 0) rc = -errno;
    close(fd);
    return rc;
}

static int run(const char *const *argv, const char *stdin_data)
{
    int pfd[2] = {-1, -1};
    if (stdin_data && pipe2(pfd, O_CLOEXEC) != 0) return -errno;
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        if (stdin_data) dup2(pfd[0], STDIN_FILENO);
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    if (stdin_data) {
        close(pfd[0]);
        size_t len = strlen(stdin_data);
        void (*old)(int) = signal(SIGPIPE, SIG_IGN);
        ssize_t n = write(pfd[1], stdin_data, len);
        (void)n; /* a short write shows up as the child's failure */
        signal(SIGPIPE, old);
        close(pfd[1]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : CN_ERR_IO;
}

int cn_cloudinit_action(const struct ci_actions *a, const char *logline, const char *const *argv,
                        const char *stdin_data)
{
    if (a->logpath) return append_line(a->logpath, logline);
    int rc = run(argv, stdin_data);
    if (rc != 0) CN_LOGE("cloudinit", "command failed cmd=\"%s\" err=%s", logline, cn_strerror(rc));
    return rc;
}
