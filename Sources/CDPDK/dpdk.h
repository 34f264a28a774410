// DPDK's link flags, through pkg-config (libdpdk). Swift code never imports
// DPDK's headers directly: it goes through CDPDKShim, whose header declares
// only opaque types and plain functions.
#ifndef STATELESSKIT_CDPDK_H
#define STATELESSKIT_CDPDK_H
#endif
