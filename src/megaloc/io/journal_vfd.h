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
// open (any mode).
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

// If `<path>.journal` exists: replays it when complete and deletes it (returns true); an
// incomplete one (a kill while it was being written) is deleted if `discard_incomplete` (writers
// holding the file lock), else left alone. Throws IoError if the replay fails (e.g. the file is
// read-only).
bool RecoverJournal(const std::string& path, bool discard_incomplete);

}  // namespace internal
}  // namespace megaloc
