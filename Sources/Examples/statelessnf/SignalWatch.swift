import Dispatch
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Signals a command handles itself (SIGINT and SIGTERM to stop cleanly,
/// SIGHUP to reload) rather than die of.
enum SignalWatch {
    /// Lets `signals` reach the calling thread, and the threads it starts
    /// from now on: a parent may have started the process with them blocked
    /// (a test runner's thread does).
    static func unblock(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for number in signals { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Calls `handler` on a dispatch queue for each of `signals`, instead of
    /// their default action. Cancel the sources to stop watching.
    static func watch(_ signals: [Int32], _ handler: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
        unblock(signals)
        return signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: handler)
            source.resume()
            return source
        }
    }
}
