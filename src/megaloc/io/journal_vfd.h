#pragma once

// A crash-safe HDF5 virtual file driver ("megaloc_journal") for writers of descriptor files.
//
// HDF5 rewrites its metadata (B-tree nodes, heaps, object headers, superblock) in place when it
// flushes, so a process killed during H5Fflush can leave a file that no longer opens. This driver
// makes every commit atomic with a redo journal:
//  * writes to bytes that were already in the file at the last commit go to an in-memory page
//    overlay (reads see them); writes beyond that point (fresh space: new raw data, new metadata)
//    go straight to the file - nothing committed references them yet;
//  * a commit (HDF5's driver flush, i.e. every H5Fflush and the close) first syncs the file, writes
//    the overlay pages and the new file size to `<file>.journal` with a checksum and syncs it, then
//    applies the pages to the file, sets its size, syncs, and deletes the journal.
// A kill before the journal is complete leaves the committed file untouched (the partial journal is
// discarded on the next open); a kill after it is complete is repaired by replaying it on the next
// open (any mode, but only under the file's exclusive lock, never while another writer is live, and
// only if the journal belongs to the file: RecoverJournal). A write error (disk full) stops the
// writer as a kill would: the file keeps its last commit (JournalWriteError).
//
// Superblock v3 files (h5py/hloc with libver="latest") carry "file open for writing" flags that
// HDF5 sets for the whole time a writer has the file open; a writer killed with them set makes the
// file unopenable for every HDF5 program (until `h5clear -s`). This driver never writes them to
// disk and ignores them when reading (it holds an flock instead, like HDF5's own file locking),
// fixing the superblock checksum; so it also opens such files left by other tools.
//
// The file format is plain HDF5: any reader (h5py, hloc) opens it with the default
// driver.

#include <cstdint>
#include <string>

namespace megaloc {
namespace internal {

// Registers the driver (once per process) and returns its id (an hid_t).
int64_t JournalDriverId();

// Sets the driver on a file-access property list.
void SetJournalDriver(int64_t fapl);

// Path of the journal of `path`.
std::string JournalPath(const std::string& path);

// If `<path>.journal` exists and no writer holds the file's lock: replays it when it is complete and
// belongs to this file (see below), then deletes it (returns true). An incomplete journal (a kill
// while it was being written), or one of another file, is deleted if `discard_incomplete`, else left
// alone. While a writer holds the lock nothing is touched (returns false): the journal is its own.
// Throws IoError if a replay is needed but fails (e.g. the file is read-only, or the disk is full).
//
// A journal records the identity of its file (device, inode, the file's size before and after the
// replay, a checksum of pages the replay does not change); a journal that does not match the file
// (the file was replaced, or another file was copied to its name, after the writer was killed) is
// never applied.
bool RecoverJournal(const std::string& path, bool discard_incomplete);

// The first write error (e.g. "cannot write: No space left on device") of the writer of `path`
// opened last in this process, or "" if none. After such an error the driver drops every further
// write and commit of that writer (the file keeps its last commit, as after a kill, and HDF5 can
// still close it), so writers must check this after writing and flushing.
std::string JournalWriteError(const std::string& path);

}  // namespace internal
}  // namespace megaloc
