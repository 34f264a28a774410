// The hiredis shim: hiredis's public API as Swift sees it.
//
// Swift cannot call hiredis's variadic functions (redisCommand,
// redisAppendCommand); StatelessKitStore uses the argv forms
// (redisAppendCommandArgv) and redisGetReply instead.
#ifndef STATELESSKIT_CHIREDIS_SHIM_H
#define STATELESSKIT_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
