/*
 * Stand-in for e2e-test-images/nonewprivs: installed setuid root, it prints
 * the effective uid it runs with, so a caller sees whether the setuid bit
 * took effect (no_new_privs off) or not (on).
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
