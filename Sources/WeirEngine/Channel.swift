import WeirCore
import Foundation

/// A bounded multi-producer, single-consumer queue of stream elements: the
/// inbox of one subtask. Producers block when it is full (backpressure);
/// `cancel()` wakes everyone so a failing job shuts down promptly.
///
/// `@unchecked Sendable`: all mutable state is guarded by `cond`.
public final class Channel: ElementQueue, @unchecked Sendable {
    private let cond = NSCondition()
    private var items: [(Int, StreamElement)?]
    private var head = 0
    private var count = 0
    private var cancelled = false
    private var woken = false
    public let capacity: Int
    /// Nanoseconds producers spent blocked on a full queue (backpressure time).
    private var blockedNanos: UInt64 = 0

    /// Total time producers have spent blocked on this channel.
    public var backpressureNanos: UInt64 {
        cond.lock(); defer { cond.unlock() }
        return blockedNanos
    }

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        self.items = Array(repeating: nil, count: self.capacity)
    }

    /// Enqueues an element from input `input`; false if the channel was cancelled.
    @discardableResult
    public func send(_ input: Int, _ e: StreamElement) -> Bool {
        cond.lock()
        defer { cond.unlock() }
        if count == capacity && !cancelled {
            let t0 = DispatchTime.now().uptimeNanoseconds
            while count == capacity && !cancelled { cond.wait() }
            blockedNanos &+= DispatchTime.now().uptimeNanoseconds &- t0
        }
        if cancelled { return false }
        items[(head + count) % capacity] = (input, e)
        count += 1
        cond.broadcast()
        return true
    }

    /// Dequeues the next element, blocking; nil once cancelled.
    public func receive() -> (Int, StreamElement)? {
        cond.lock()
        defer { cond.unlock() }
        while count == 0 && !cancelled { cond.wait() }
        if cancelled { return nil }
        return takeLocked()
    }

    /// Dequeues the next element, waiting at most until `deadline`.
    public func receive(before deadline: Date) -> Received {
        cond.lock()
        defer { cond.unlock() }
        while count == 0 && !cancelled {
            if !cond.wait(until: deadline) { break }
        }
        if cancelled { return .cancelled }
        if count == 0 { return .timeout }
        let e = takeLocked()
        return .element(e.0, e.1)
    }

    /// Dequeues the next element, blocking until one arrives, the channel is
    /// cancelled, or `wake()` is called (then `.timeout`).
    public func receiveOrWake() -> Received {
        cond.lock()
        defer { cond.unlock() }
        while count == 0 && !cancelled && !woken { cond.wait() }
        if cancelled { return .cancelled }
        if count == 0 { woken = false; return .timeout }
        let e = takeLocked()
        return .element(e.0, e.1)
    }

    /// Dequeues the next element if there is one, without waiting (the simulator steps tasks this way).
    func tryReceive() -> (Int, StreamElement)? {
        cond.lock()
        defer { cond.unlock() }
        guard count > 0, !cancelled else { return nil }
        return takeLocked()
    }

    /// Removes the head element; called with the lock held and `count > 0`.
    @inline(__always)
    private func takeLocked() -> (Int, StreamElement) {
        let e = items[head]!
        items[head] = nil
        head = (head + 1) % capacity
        count -= 1
        cond.broadcast()
        return e
    }

    /// Elements waiting in the queue.
    var pending: Int {
        cond.lock(); defer { cond.unlock() }
        return count
    }

    /// Wakes the consumer blocked in `receiveOrWake()` (say, to commit a completed checkpoint).
    public func wake() {
        cond.lock()
        woken = true
        cond.broadcast()
        cond.unlock()
    }

    public func cancel() {
        cond.lock()
        cancelled = true
        cond.broadcast()
        cond.unlock()
    }
}
