/* The program the `link` target links, and a seed of the `object` target: an entry that uses
 * the mini libc below (so archive members are pulled), data with relocations against code and
 * strings, bss, a constructor, a weak reference and a mergeable string. */
typedef unsigned long size_t;
void *memcpy(void *, const void *, size_t);
size_t strlen(const char *);
long write(int, const void *, size_t);
void exit(int) __attribute__((noreturn));
extern int optional_hook(void) __attribute__((weak));

static char buffer[256];
static const char greeting[] = "hello, fuzz\n";
int (*const table[])(void) = {optional_hook};
int counter = 3;

__attribute__((constructor)) static void bump(void) { counter++; }

void _start(void)
{
	size_t n = strlen(greeting);
	memcpy(buffer, greeting, n);
	if (table[0])
		counter += table[0]();
	write(1, buffer, n);
	exit(counter);
}
