import ArgumentParser
import StatelessKitDPDK

/// `--worker-cpus`: the CPU each DPDK worker is pinned to, in worker order,
/// written as DPDK's `-l` lists are: numbers and ranges, comma-separated
/// (`1`, `1,3`, `2-5`).
struct WorkerCPUs {
    /// The CPUs in the order given: worker 0's first.
    let cpus: [Int]
    /// The option's text, for messages.
    let text: String

    /// Parses `text`: numbers and ranges, no CPU twice.
    init(parsing text: String) throws(ValidationError) {
        var cpus: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]),
                  low >= 0, low <= high, high < 1024 else {
                throw ValidationError("--worker-cpus \(text): \"\(part)\" is not a CPU number (0-1023) or a range LOW-HIGH")
            }
            for cpu in low...high {
                guard !cpus.contains(cpu) else { throw ValidationError("--worker-cpus \(text): CPU \(cpu) is given twice") }
                cpus.append(cpu)
            }
        }
        self.cpus = cpus
        self.text = text
    }

    /// Checks that there is a CPU for each of `workers` workers.
    func check(workers: Int) throws(ValidationError) {
        guard cpus.count >= workers else {
            throw ValidationError("--worker-cpus \(text): \(cpus.count) CPU(s) for \(workers) workers (one each)")
        }
    }

    /// Checks, once the EAL has started, that the process may run on every
    /// CPU (those it could run on before the EAL pinned its main thread).
    func validate(against allowed: [Int]) throws(ValidationError) {
        if let outside = cpus.first(where: { !allowed.contains($0) }) {
            throw ValidationError("--worker-cpus: this process may not run on CPU \(outside) (it may on \(allowed.map(String.init).joined(separator: ",")))")
        }
    }

    /// The CPUs for `workers` workers: `explicit` when given (checked against
    /// the process's CPUs), else, when `pinByDefault`, one each off the EAL
    /// main lcore's CPUs where there are enough (``EAL/defaultWorkerCPUs(workers:)``);
    /// `nil`: every worker free to run on any of the process's CPUs.
    static func resolve(_ explicit: WorkerCPUs?, workers: Int, pinByDefault: Bool) throws(ValidationError) -> [Int]? {
        if let explicit {
            try explicit.validate(against: EAL.processCPUs)
            return Array(explicit.cpus.prefix(workers))
        }
        return pinByDefault ? EAL.defaultWorkerCPUs(workers: workers) : nil
    }
}
