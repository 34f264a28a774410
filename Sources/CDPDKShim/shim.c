// The DPDK shim; see include/CDPDKShim.h.
//
// DPDK's inline code needs SSE4.2, which SwiftPM's build of this target does
// not turn on (it drops libdpdk.pc's -march flag), so every function in this
// file is compiled for that target.
#pragma clang attribute push(__attribute__((target("sse4.2,popcnt"))), apply_to = function)

// rte_thread_register is still marked experimental in DPDK 22.11;
// pthread_{get,set}affinity_np are GNU extensions.
#define ALLOW_EXPERIMENTAL_API 1
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "CDPDKShim.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_mbuf_pool_ops.h>


int sk_eal_cleanup(void) { return rte_eal_cleanup(); }

int sk_errno(void) { return rte_errno; }

const char *sk_strerror(int error) { return rte_strerror(error); }

uint16_t sk_eth_dev_count_avail(void) { return rte_eth_dev_count_avail(); }

struct rte_mempool *sk_pktmbuf_pool_create(const char *name, unsigned count,
                                           unsigned cache_size,
                                           uint16_t data_room_size) {
    // rte_pktmbuf_pool_create's steps, with one change without hugepages:
    // a pool whose objects must be IOVA-contiguous then gives each mbuf a
    // 4 KB page of its own, and every mbuf's header falls in the same L1
    // set, so the objects are packed across pages instead (no device here
    // DMAs into 4 KB pages).
    unsigned flags = rte_eal_has_hugepages() ? 0 : RTE_MEMPOOL_F_NO_IOVA_CONTIG;
    struct rte_pktmbuf_pool_private private_data;
    memset(&private_data, 0, sizeof private_data);
    private_data.mbuf_data_room_size = data_room_size;
    struct rte_mempool *pool = rte_mempool_create_empty(
        name, count, (unsigned)sizeof(struct rte_mbuf) + data_room_size, cache_size,
        sizeof private_data, (int)rte_socket_id(), flags);
    if (pool == NULL) return NULL;
    int rc = rte_mempool_set_ops_byname(pool, rte_mbuf_best_mempool_ops(), NULL);
    if (rc == 0) {
        rte_pktmbuf_pool_init(pool, &private_data);
        rc = rte_mempool_populate_default(pool);
    }
    if (rc < 0) {
        rte_mempool_free(pool);
        rte_errno = -rc;
        return NULL;
    }
    rte_mempool_obj_iter(pool, rte_pktmbuf_init, NULL);
    return pool;
}

void sk_mempool_free(struct rte_mempool *pool) { rte_mempool_free(pool); }

int sk_eth_port_start(uint16_t port, uint16_t rx_queues, uint16_t tx_queues,
                      uint16_t ring_size, struct rte_mempool *pool, int *rss) {
    struct rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc < 0) return rc;
    if (rx_queues > info.max_rx_queues || tx_queues > info.max_tx_queues) return -EINVAL;
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    // Spread flows over the receive queues by their addresses and ports
    // when the device can; otherwise the device spreads packets its own way.
    uint64_t hash = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    *rss = rx_queues > 1 && hash != 0;
    if (*rss) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = hash;
    }
    rc = rte_eth_dev_configure(port, rx_queues, tx_queues, &conf);
    if (rc < 0) return rc;
    uint16_t rx_ring = ring_size, tx_ring = ring_size;
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_ring, &tx_ring);
    if (rc < 0) return rc;
    int socket = rte_eth_dev_socket_id(port);
    for (uint16_t q = 0; q < rx_queues; q++) {
        rc = rte_eth_rx_queue_setup(port, q, rx_ring, (unsigned)socket, NULL, pool);
        if (rc < 0) return rc;
    }
    for (uint16_t q = 0; q < tx_queues; q++) {
        rc = rte_eth_tx_queue_setup(port, q, tx_ring, (unsigned)socket, NULL);
        if (rc < 0) return rc;
    }
    rc = rte_eth_dev_start(port);
    if (rc < 0) return rc;
    // Frames for the port's own address only would miss ARP broadcasts and
    // the frames a test's kernel sends before it learns the port's address.
    rte_eth_promiscuous_enable(port);
    return 0;
}

int sk_eth_macaddr(uint16_t port, uint8_t address[6]) {
    struct rte_ether_addr raw;
    int rc = rte_eth_macaddr_get(port, &raw);
    if (rc < 0) return rc;
    memcpy(address, raw.addr_bytes, 6);
    return 0;
}

int sk_eth_link_up(uint16_t port) {
    struct rte_eth_link link;
    memset(&link, 0, sizeof link);
    int rc = rte_eth_link_get_nowait(port, &link);
    if (rc < 0) return rc;
    return link.link_status == RTE_ETH_LINK_UP;
}

int sk_eth_queue_stats(uint16_t port, uint16_t queue, struct sk_queue_stats *stats) {
    if (queue >= RTE_ETHDEV_QUEUE_STAT_CNTRS) return -ERANGE;
    struct rte_eth_stats raw;
    int rc = rte_eth_stats_get(port, &raw);
    if (rc < 0) return rc;
    stats->ipackets = raw.q_ipackets[queue];
    stats->opackets = raw.q_opackets[queue];
    stats->errors = raw.q_errors[queue];
    return 0;
}

// The CPUs the process could run on before the EAL pinned its main thread.
static cpu_set_t sk_saved_cpus;
static int sk_saved_cpus_valid;

int sk_eal_init(int argc, char **argv) {
    if (!sk_saved_cpus_valid &&
        pthread_getaffinity_np(pthread_self(), sizeof sk_saved_cpus, &sk_saved_cpus) == 0)
        sk_saved_cpus_valid = 1;
    int parsed = rte_eal_init(argc, argv);
    // rte_eal_init pinned the calling thread to the main lcore's CPUs: it
    // gets its own back, so that the process that embeds the EAL (its other
    // work, a test runner's threads, the processes it starts) is not
    // confined to them. The EAL's record of the main lcore's CPUs stays.
    if (parsed >= 0 && sk_saved_cpus_valid)
        pthread_setaffinity_np(pthread_self(), sizeof sk_saved_cpus, &sk_saved_cpus);
    return parsed;
}

int sk_thread_register(int cpu) {
    cpu_set_t set;
    if (cpu >= 0) {
        if (cpu >= CPU_SETSIZE) { rte_errno = EINVAL; return -1; }
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
    } else if (sk_saved_cpus_valid) {
        set = sk_saved_cpus;
    } else {
        return rte_thread_register();
    }
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0) { rte_errno = rc; return -1; }
    return rte_thread_register();
}

static int sk_cpu_list(const cpu_set_t *set, int *cpus, int capacity) {
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < capacity; cpu++)
        if (CPU_ISSET(cpu, set)) cpus[count++] = cpu;
    return count;
}

int sk_process_cpus(int *cpus, int capacity) {
    return sk_saved_cpus_valid ? sk_cpu_list(&sk_saved_cpus, cpus, capacity) : 0;
}

int sk_main_lcore_cpus(int *cpus, int capacity) {
    rte_cpuset_t set = rte_lcore_cpuset(rte_get_main_lcore());
    return sk_cpu_list(&set, cpus, capacity);
}

int sk_current_cpu(void) { return sched_getcpu(); }

void sk_thread_unregister(void) { rte_thread_unregister(); }

int sk_eth_port_stop(uint16_t port) {
    int rc = rte_eth_dev_stop(port);
    if (rc < 0) return rc;
    return rte_eth_dev_close(port);
}

uint16_t sk_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs,
                     uint16_t count) {
    return rte_eth_rx_burst(port, queue, mbufs, count);
}

uint16_t sk_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **mbufs,
                     uint16_t count) {
    return rte_eth_tx_burst(port, queue, mbufs, count);
}

void sk_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count) {
    rte_pktmbuf_free_bulk(mbufs, count);
}

void *sk_pktmbuf_data(struct rte_mbuf *mbuf) { return rte_pktmbuf_mtod(mbuf, void *); }

int sk_eth_stats(uint16_t port, struct sk_port_stats *stats) {
    struct rte_eth_stats raw;
    int rc = rte_eth_stats_get(port, &raw);
    if (rc < 0) return rc;
    stats->ipackets = raw.ipackets;
    stats->opackets = raw.opackets;
    stats->imissed = raw.imissed;
    stats->ierrors = raw.ierrors;
    stats->oerrors = raw.oerrors;
    stats->rx_nombuf = raw.rx_nombuf;
    return 0;
}

struct rte_mbuf *sk_pktmbuf_alloc(struct rte_mempool *pool) { return rte_pktmbuf_alloc(pool); }

void sk_pktmbuf_free(struct rte_mbuf *mbuf) { rte_pktmbuf_free(mbuf); }

_Static_assert(offsetof(struct rte_mbuf, buf_addr) == SK_MBUF_BUF_ADDR && offsetof(struct rte_mbuf, data_off) == SK_MBUF_DATA_OFF
               && offsetof(struct rte_mbuf, nb_segs) == SK_MBUF_NB_SEGS && offsetof(struct rte_mbuf, pkt_len) == SK_MBUF_PKT_LEN
               && offsetof(struct rte_mbuf, data_len) == SK_MBUF_DATA_LEN && offsetof(struct rte_mbuf, buf_len) == SK_MBUF_BUF_LEN,
               "this DPDK's rte_mbuf layout differs from the SK_MBUF_ offsets in CDPDKShim.h: update them");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_off) == 2 && sizeof(((struct rte_mbuf *)0)->buf_len) == 2
               && sizeof(((struct rte_mbuf *)0)->nb_segs) == 2 && sizeof(((struct rte_mbuf *)0)->data_len) == 2
               && sizeof(((struct rte_mbuf *)0)->pkt_len) == 4, "the mbuf field sizes the Swift side assumes");

#pragma clang attribute pop
