#ifndef C_PREFETCH_SHIM_H
#define C_PREFETCH_SHIM_H

/// Asks the processor to bring the cache line holding `address` in, for a
/// read soon: a hint, never a memory access (a stale or racing address is
/// harmless). Swift has no prefetch of its own.
static inline void sk_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
