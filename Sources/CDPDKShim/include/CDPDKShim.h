// The DPDK shim: plain C functions around the parts of DPDK that Swift
// cannot import (inline functions, macros, the thread-local rte_errno and
// structures declared aligned(64), which Swift drops).
//
// This header includes no DPDK header: DPDK's types are opaque here, so a
// Swift module that imports the shim needs neither DPDK's include paths nor
// its -march flags.
#ifndef STATELESSKIT_CDPDK_SHIM_H
#define STATELESSKIT_CDPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/// rte_eal_init (first noting the CPUs the calling thread may run on, for
/// sk_thread_register, and giving them back to it after: rte_eal_init pins
/// it to the main lcore). DPDK keeps the argv strings: pass strings that live for the
/// rest of the process. Returns the number of arguments parsed, or -1 with
/// the reason in sk_errno().
int sk_eal_init(int argc, char **argv);
/// rte_eal_cleanup.
int sk_eal_cleanup(void);
/// The calling thread's rte_errno.
int sk_errno(void);
/// rte_strerror.
const char *sk_strerror(int error);

/// rte_eth_dev_count_avail.
uint16_t sk_eth_dev_count_avail(void);
/// rte_pktmbuf_pool_create on the caller's socket; without hugepages, its
/// steps with the mbufs packed across 4 KB pages (RTE_MEMPOOL_F_NO_IOVA_CONTIG)
/// instead of a page each. NULL with the reason in sk_errno().
struct rte_mempool *sk_pktmbuf_pool_create(const char *name, unsigned count,
                                           unsigned cache_size,
                                           uint16_t data_room_size);
/// rte_mempool_free.
void sk_mempool_free(struct rte_mempool *pool);

/// Configures a port with the given queue counts and ring sizes, sets up
/// every queue (rx queues take buffers from `pool`), starts the port and
/// makes it promiscuous. With several rx queues on a device that hashes,
/// RSS spreads flows by addresses and ports and `*rss` is set to 1.
/// Returns 0 or a negative errno (-EINVAL: more queues than the device has).
int sk_eth_port_start(uint16_t port, uint16_t rx_queues, uint16_t tx_queues,
                      uint16_t ring_size, struct rte_mempool *pool, int *rss);
/// Whether the port's link is up (1) or down (0), without waiting
/// (rte_eth_link_get_nowait); a negative errno on failure.
int sk_eth_link_up(uint16_t port);
/// rte_eth_macaddr_get into `address`; returns 0 or a negative errno.
int sk_eth_macaddr(uint16_t port, uint8_t address[6]);
/// rte_eth_dev_stop then rte_eth_dev_close. Returns 0 or a negative errno.
int sk_eth_port_stop(uint16_t port);

/// rte_eth_rx_burst.
uint16_t sk_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs,
                     uint16_t count);
/// rte_eth_tx_burst.
uint16_t sk_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs,
                     uint16_t count);

/// rte_pktmbuf_free_bulk.
void sk_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
/// rte_pktmbuf_mtod: the first byte of the packet's data.
void *sk_pktmbuf_data(struct rte_mbuf *mbuf);

/// A port's totals (rte_eth_stats_get): packets received and sent, received
/// packets the port missed (its ring full), receive and send errors, and
/// receive buffers it could not get.
struct sk_port_stats {
    uint64_t ipackets, opackets, imissed, ierrors, oerrors, rx_nombuf;
};
/// Fills `stats` for `port`; returns 0 or a negative errno.
int sk_eth_stats(uint16_t port, struct sk_port_stats *stats);

/// One queue's totals, where the device keeps them (rte_eth_stats's
/// per-queue counters, for the first 16 queues).
struct sk_queue_stats {
    uint64_t ipackets, opackets, errors;
};
/// Fills `stats` for `queue` of `port`; returns 0 or a negative errno.
int sk_eth_queue_stats(uint16_t port, uint16_t queue, struct sk_queue_stats *stats);

/// rte_thread_register: pins the calling thread (to `cpu` when it is 0 or
/// more, else to every CPU the process could run on before sk_eal_init),
/// then makes it an EAL thread with an lcore id of its own (so that mempool
/// caches serve it). Returns 0, or -1 with the reason in sk_errno() (a CPU
/// the thread may not run on: EINVAL, and the thread is not registered).
int sk_thread_register(int cpu);
/// The CPUs the process could run on before rte_eal_init (each CPU's
/// number, ascending, at most `capacity` of them): returns how many.
int sk_process_cpus(int *cpus, int capacity);
/// The CPUs of the EAL's main lcore, as sk_process_cpus lists them.
int sk_main_lcore_cpus(int *cpus, int capacity);
/// sched_getcpu (a GNU extension, which Swift does not import): the CPU
/// the calling thread runs on, or -1.
int sk_current_cpu(void);
/// rte_thread_unregister.
void sk_thread_unregister(void);

/// rte_pktmbuf_alloc: an mbuf with its data at the default headroom, or NULL.
struct rte_mbuf *sk_pktmbuf_alloc(struct rte_mempool *pool);
/// rte_pktmbuf_free.
void sk_pktmbuf_free(struct rte_mbuf *mbuf);
/// Where struct rte_mbuf keeps the fields a packet view reads and writes,
/// as constants (Swift cannot import struct rte_mbuf), so that Swift reaches
/// them with one load or store at a fixed offset. shim.c checks each
/// against offsetof when it is compiled: a DPDK whose layout differs fails
/// the build there. Field types: buf_addr void *, pkt_len uint32_t, the
/// others uint16_t.
enum {
    SK_MBUF_BUF_ADDR = 0,
    SK_MBUF_DATA_OFF = 16,
    SK_MBUF_NB_SEGS = 20,
    SK_MBUF_PKT_LEN = 36,
    SK_MBUF_DATA_LEN = 40,
    SK_MBUF_BUF_LEN = 54,
};

#endif
