// The shim is its header: sk_prefetch is an inline function.
#include "CPrefetchShim.h"
