// The allocation-counter shim: counts calls to malloc and its relatives in
// the process that links it (the statelessnf command), so that benchmarks
// report allocations per packet. It replaces malloc, calloc, realloc,
// memalign, posix_memalign and aligned_alloc with glibc's own
// implementations (__libc_*) plus one relaxed atomic increment.
#ifndef STATELESSKIT_CALLOCATIONCOUNTER_SHIM_H
#define STATELESSKIT_CALLOCATIONCOUNTER_SHIM_H

#include <stdint.h>

/// Allocations (malloc, calloc, realloc, and the aligned forms) so far.
uint64_t sk_allocation_count(void);

#endif
