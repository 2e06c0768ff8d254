/*
 * Prints the seccomp BPF programs installed in a process, read from the
 * kernel with PTRACE_SECCOMP_GET_FILTER (needs CAP_SYS_ADMIN and a kernel
 * with CONFIG_CHECKPOINT_RESTORE). Tests use it to see from the host which
 * filter a pod's pause process really runs under: pause itself calls
 * nothing a profile could be observed through.
 *
 * Output: one line "filter N" per filter (0 = the newest), then one line
 * "code jt jf k" (hex code and k) per instruction. The tracee is seized,
 * stopped with PTRACE_INTERRUPT and detached again; it keeps running.
 */
#include <errno.h>
#include <linux/filter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

int main(int argc, char **argv)
{
	pid_t pid;
	int status;
	long idx;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PID\n", argv[0]);
		return 2;
	}
	pid = (pid_t)atoi(argv[1]);
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0) {
		perror("PTRACE_SEIZE");
		return 1;
	}
	if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) != 0 || waitpid(pid, &status, __WALL) != pid) {
		perror("PTRACE_INTERRUPT");
		return 1;
	}
	for (idx = 0;; idx++) {
		long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)idx, NULL);
		struct sock_filter *prog;
		long i;

		if (n < 0) {
			/* ENOENT: no filter at this index (none at all for an unconfined process). */
			if (errno == ENOENT || (errno == EINVAL && idx == 0))
				break;
			perror("PTRACE_SECCOMP_GET_FILTER");
			return 1;
		}
		prog = calloc((size_t)n, sizeof(*prog));
		if (!prog || ptrace(PTRACE_SECCOMP_GET_FILTER, pid, (void *)idx, prog) != n) {
			perror("PTRACE_SECCOMP_GET_FILTER");
			return 1;
		}
		printf("filter %ld\n", idx);
		for (i = 0; i < n; i++)
			printf("%04x %u %u %08x\n", prog[i].code, prog[i].jt, prog[i].jf, prog[i].k);
		free(prog);
	}
	if (ptrace(PTRACE_DETACH, pid, NULL, NULL) != 0) {
		perror("PTRACE_DETACH");
		return 1;
	}
	return 0;
}
