/*
 * Web server for the stand-ins of the images the cri-tools validation suite
 * (critest) pulls from the internet: e2e-test-images/nginx, e2e-test-images/httpd
 * and cri-tools' hostnet-nginx. The suite only needs a process that answers
 * HTTP GET with 200 on a port, and for nginx the traces it looks for from
 * other containers: a pid file, the process name `nginx` (pidof) and
 * "master process" in /proc/<pid>/cmdline.
 *
 * Settings come from the environment (the image config sets them):
 *   WEB_PORT     TCP port on all IPv4 addresses (default 80)
 *   WEB_NAME     name printed in the start line on stdout (the suite greps a
 *                container's log for "httpd")
 *   WEB_PIDFILE  file to write the pid into, if set
 *   WEB_ARGV0    if set and argv[0] differs, exec this binary again with that
 *                argv[0] (nginx's "nginx: master process ..." title)
 * SIGTERM, SIGINT and SIGQUIT end it with status 0: as PID 1 of a container
 * it would otherwise ignore them.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *argv0 = getenv("WEB_ARGV0");
	const char *name = getenv("WEB_NAME") ? getenv("WEB_NAME") : "webserver";
	const char *pidfile = getenv("WEB_PIDFILE");
	int port = getenv("WEB_PORT") ? atoi(getenv("WEB_PORT")) : 80;
	static const char page[] = "<html><body><h1>It works</h1></body></html>\n";
	char head[256], buf[4096];
	struct sockaddr_in addr;
	int fd, one = 1;

	(void)argc;
	if (argv0 && strcmp(argv[0], argv0) != 0) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *args[] = { (char *)argv0, NULL };
		if (n > 0) {
			self[n] = 0;
			execv(self, args);
		}
		perror("re-exec");
	}
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	signal(SIGQUIT, on_stop);
	signal(SIGPIPE, SIG_IGN);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)port);
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
		perror("bind/listen");
		return 1;
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	printf("%s: serving HTTP on port %d\n", name, port);
	fflush(stdout);
	for (;;) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		/* one read is enough for a GET from the suite's HTTP client */
		if (read(c, buf, sizeof(buf)) > 0) {
			int n = snprintf(head, sizeof(head),
					 "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
					 sizeof(page) - 1);
			if (write(c, head, (size_t)n) == n)
				(void)!write(c, page, sizeof(page) - 1);
		}
		close(c);
	}
}
