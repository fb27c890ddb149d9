import Foundation
import XCTest
import WeirCore
@testable import WeirState

/// A full disk and a refused write on the state directory get codes of their
/// own where the failed call is seen, so the control plane's suggestion is
/// found by code rather than in the OS's wording.
final class IOErrorCodeTests: XCTestCase {
    func testErrnoDecidesTheCode() {
        XCTAssertEqual(WeirError.Code.io(errno: ENOSPC), .stateDirFull)
        XCTAssertEqual(WeirError.Code.io(errno: EDQUOT), .stateDirFull)
        XCTAssertEqual(WeirError.Code.io(errno: EACCES), .stateDirUnwritable)
        XCTAssertEqual(WeirError.Code.io(errno: EPERM), .stateDirUnwritable)
        XCTAssertEqual(WeirError.Code.io(errno: EROFS), .stateDirUnwritable)
        XCTAssertEqual(WeirError.Code.io(errno: EIO), .io)
        XCTAssertEqual(WeirError.Code.io(errno: ENOENT), .io)
    }

    func testTheStoresFileErrorsCarryIt() {
        let e = DurableFiles.ioError("/s/chk-3/a.state", "cannot write", ENOSPC)
        XCTAssertEqual(e.code, .stateDirFull)
        XCTAssertEqual(e.subject, "/s/chk-3/a.state")
        XCTAssertEqual(e.message, "cannot write: \(String(cString: strerror(ENOSPC)))")
        XCTAssertEqual(DurableFiles.ioError("/s", "cannot create directory", EROFS).code, .stateDirUnwritable)
    }

    func testFoundationErrorsAreClassifiedByTheirErrno() {
        XCTAssertEqual(DurableFiles.code(of: NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC))), .stateDirFull)
        XCTAssertEqual(DurableFiles.code(of: CocoaError(.fileWriteNoPermission)), .stateDirUnwritable)
        XCTAssertEqual(DurableFiles.code(of: CocoaError(.fileWriteOutOfSpace)), .stateDirFull)
        let wrapped = NSError(domain: NSCocoaErrorDomain, code: CocoaError.fileWriteUnknown.rawValue,
                              userInfo: [NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(EACCES))])
        XCTAssertEqual(DurableFiles.code(of: wrapped), .stateDirUnwritable)
        XCTAssertEqual(DurableFiles.code(of: CocoaError(.fileReadUnknown)), .io)
    }

    func testAStoreThatCannotBeCreatedSaysWhy() throws {
        // A regular file where the store's parent directory should be: ENOTDIR, a plain io_error.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("weir-iocode-\(UUID().uuidString)")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        XCTAssertThrowsError(try SnapshotStore(directory: file.appendingPathComponent("state"), retain: 1)) { e in
            XCTAssertEqual((e as? WeirError)?.code, .io, "\(e)")
        }
    }
}
