/* write and exit through system calls; a jump table and a TLS variable for more relocation
 * kinds. */
typedef unsigned long size_t;
_Thread_local int last_error;

long write(int fd, const void *buf, size_t n)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(1L), "D"((long)fd), "S"(buf), "d"(n) : "rcx", "r11", "memory");
	if (ret < 0)
		last_error = (int)-ret;
	return ret;
}

void exit(int status)
{
	switch (status & 7) {
	case 0: status = 10; break;
	case 1: status = 21; break;
	case 2: status = 32; break;
	case 3: status = 43; break;
	case 4: status = 54; break;
	case 5: status = 65; break;
	default: break;
	}
	__asm__ volatile("syscall" : : "a"(60L), "D"((long)status) : "rcx", "r11", "memory");
	__builtin_unreachable();
}
