/*
 * Pod infra ("pause") program for the cri-adapter test harness.
 *
 * It runs as PID 1 of a pod's sandbox: it holds the pod's namespaces open,
 * sleeps until told to stop, and reaps any child that gets re-parented to it
 * (orphans in a shared PID namespace). SIGINT or SIGTERM end it with status 0.
 *
 * Signals are blocked except inside sigsuspend(), so a stop request can never
 * slip in between checking the flag and going to sleep.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_child(int sig)
{
	int saved = errno;
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

static int install(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigfillset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv)
{
	sigset_t blocked, waitmask;

	if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
		puts("cri-adapter-test pause 1.0");
		return 0;
	}
	if (getpid() != 1)
		fputs("pause: warning: not running as PID 1\n", stderr);

	sigemptyset(&blocked);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &blocked, &waitmask) != 0) {
		perror("pause: sigprocmask");
		return 1;
	}
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGCHLD);

	if (install(SIGINT, on_stop, 0) != 0 || install(SIGTERM, on_stop, 0) != 0 ||
	    install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) != 0) {
		perror("pause: sigaction");
		return 1;
	}

	while (!stop_requested)
		sigsuspend(&waitmask);

	return 0;
}
