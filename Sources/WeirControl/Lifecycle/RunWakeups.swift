import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What wakes a run's watcher, instead of a polling loop: inotify on the
/// run's events file (each new event line), and for a child process a
/// thread blocked in `waitpid` (its exit, with code or signal). A re-attached
/// run (not our child: no exit notification without pidfd) is also checked
/// once a second; without inotify the file is read every 100 ms.
final class RunWakeups: Sendable {
    private let inotify: Int32
    /// Written by the waitpid thread when the child exits.
    private let exitPipe: (read: Int32, write: Int32)
    private let exitStatus = Mutex<ProcessExit?>(nil)
    private let isChild: Bool

    init(eventsPath: String, pid: pid_t, isChild: Bool) {
        self.isChild = isChild
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        if fd >= 0 && inotify_add_watch(fd, eventsPath, UInt32(IN_MODIFY | IN_CLOSE_WRITE)) < 0 { close(fd); inotify = -1 } else { inotify = fd }
        var p: [Int32] = [-1, -1]
        if pipe(&p) != 0 { p = [-1, -1] }
        exitPipe = (p[0], p[1])
        guard isChild else { return }
        let writeFD = p[1]
        let t = Thread { [self] in
            var raw: Int32 = 0
            var r: pid_t
            repeat { r = waitpid(pid, &raw, 0) } while r < 0 && errno == EINTR
            // WIFEXITED / WTERMSIG by hand (the macros are not imported).
            let sig = raw & 0x7f
            let exit = r == pid ? (sig == 0 ? ProcessExit(code: (raw >> 8) & 0xff, signal: nil) : ProcessExit(code: nil, signal: sig))
                                : ProcessExit.unknown
            exitStatus.withLock { $0 = exit }
            var one: UInt8 = 1
            if writeFD >= 0 { _ = write(writeFD, &one, 1) }
        }
        t.name = "reap \(pid)"
        t.start()
    }

    /// The child's exit, once it happened.
    var childExit: ProcessExit? { exitStatus.withLock { $0 } }

    /// Blocks until the events file changed, the child exited, or the fallback interval passed.
    func wait() {
        var fds = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: exitPipe.read, events: Int16(POLLIN), revents: 0)]
        let timeout: Int32 = inotify < 0 ? 100 : (isChild && exitPipe.read >= 0 ? 60_000 : 1_000)
        _ = poll(&fds, nfds_t(fds.count), timeout)
        if fds[0].revents != 0 {
            var buf = [UInt8](repeating: 0, count: 4096)
            while read(inotify, &buf, buf.count) > 0 {}
        }
    }

    deinit {
        if inotify >= 0 { close(inotify) }
        if exitPipe.read >= 0 { close(exitPipe.read) }
        if exitPipe.write >= 0 { close(exitPipe.write) }
    }
}
