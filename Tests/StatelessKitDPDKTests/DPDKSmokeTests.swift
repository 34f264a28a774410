import CDPDKShim
import StatelessKitDPDK
import Testing

/// The DPDK shim links and works: the EAL starts without hugepages on a
/// net_null virtual device, a port passes packets, and everything stops.
/// (The EAL starts once per process, so this is one test.)
@Suite("DPDK shim")
struct DPDKSmokeTests {
    @Test("EAL starts with --no-huge on net_null, a port receives and sends, and it all stops")
    func ealOnNetNull() throws {
        try EAL.start(arguments: EAL.defaultArguments(prefix: "statelesskit-test-\(getpid())") + ["--vdev=net_null0"])
        #expect(EAL.portCount == 1)
        let pool = try #require(sk_pktmbuf_pool_create("smoke", 1023, 32, 2048 + 128))
        #expect(sk_eth_port_start(0, 1, 1, 256, pool) == 0)
        var mbufs = [OpaquePointer?](repeating: nil, count: 32)
        let received = mbufs.withUnsafeMutableBufferPointer { sk_rx_burst(0, 0, $0.baseAddress, 32) }
        #expect(received > 0, "net_null always has packets to receive")
        for i in 0..<Int(received) {
            #expect(sk_pktmbuf_data(mbufs[i]) != nil)
            #expect(sk_pktmbuf_data_len(mbufs[i]) > 0)
        }
        let sent = mbufs.withUnsafeMutableBufferPointer { sk_tx_burst(0, 0, $0.baseAddress, received) }
        #expect(sent == received, "net_null takes every packet")
        if sent < received {
            mbufs.withUnsafeMutableBufferPointer { sk_pktmbuf_free_bulk($0.baseAddress! + Int(sent), UInt32(received - sent)) }
        }
        #expect(sk_eth_port_stop(0) == 0)
        sk_mempool_free(pool)
        try EAL.stop()
    }
}

#if canImport(Glibc)
import Glibc
#endif
