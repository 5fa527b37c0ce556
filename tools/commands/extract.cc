// `megaloc extract`: global descriptors of an image collection into an hloc-layout HDF5 file.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "megaloc/extraction/extraction.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "megaloc/util/timer.h"
#include "megaloc/cli/option_manager.h"

namespace megaloc {
namespace {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else if (s >= 60) out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else if (seconds < 10) out << std::fixed << std::setprecision(1) << seconds << "s";
  else out << s << "s";
  return out.str();
}

// Progress display: a bar redrawn in place on a terminal, a plain line every 10 s otherwise.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1) {}

  void Update(const ExtractionProgress& p) {
    if (quiet_ || p.num_total == 0) return;
    const double rate = p.elapsed_seconds > 0 ? p.num_done / p.elapsed_seconds : 0;
    const double eta = rate > 0 ? (p.num_total - p.num_done) / rate : NAN;
    std::ostringstream line;
    if (tty_) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * p.num_done / p.num_total);
      line << "\r[" << std::string(filled, '=') << std::string(kWidth - filled, ' ') << "] "
           << p.num_done << "/" << p.num_total << "  " << std::fixed << std::setprecision(2)
           << rate << " img/s  ETA " << FormatDuration(eta);
      if (p.num_failed > 0) line << "  (" << p.num_failed << " failed)";
      line << "\033[K";
      std::cerr << line.str() << std::flush;
      drawn_ = true;
      return;
    }
    if (p.num_done != p.num_total && last_print_.ElapsedSeconds() < 10) return;
    last_print_.Restart();
    line << "Extracted " << p.num_done << "/" << p.num_total << " images (" << std::fixed
         << std::setprecision(2) << rate << " img/s, ETA " << FormatDuration(eta);
    if (p.num_failed > 0) line << ", " << p.num_failed << " failed";
    line << ")";
    std::cerr << line.str() << std::endl;
  }

  // Prints a line without garbling the bar.
  void Message(const std::string& text) {
    if (tty_ && drawn_) std::cerr << "\r\033[K";
    std::cerr << text << std::endl;
  }

  void Finish() {
    if (tty_ && drawn_) std::cerr << std::endl;
    drawn_ = false;
  }

 private:
  bool quiet_;
  bool tty_;
  bool drawn_ = false;
  Timer last_print_;
};

}  // namespace

int RunExtract(int argc, char** argv) {
  ExtractionOptions options;
  ModelCommandOptions model;
  std::string shard;
  int resize_max = 1024, as_half = 1;
  std::vector<int> resize;
  bool native = false, quiet = false;
  po::options_description desc("Options");
  desc.add_options()
      ("image_path", po::value<std::string>(&options.image_path)->required(),
       "Root directory of the images; names are paths relative to it.")
      ("output_path", po::value<std::string>(&options.output_path)->required(),
       "Output HDF5 file (hloc layout); created, or appended to (images already in it are skipped).")
      ("image_list", po::value<std::string>(&options.image_list_path),
       "File with the image names to process (first token per line, '#' comments).")
      ("as_half", po::value<int>(&as_half)->default_value(1),
       "1: store float16 (hloc's default), 0: float32.")
      ("overwrite", po::bool_switch(&options.overwrite),
       "Recompute images already in the output (a file made with other settings is replaced).")
      ("commit_interval", po::value<double>(&options.commit_interval_seconds)->default_value(1.0),
       "Seconds between commits of finished batches to the file (0: after every batch). A kill "
       "loses at most this much finished work.")
      ("shard", po::value<std::string>(&shard), "Process only shard K/N (by hash of the name).")
      ("quiet", po::bool_switch(&quiet), "No progress output (errors are still printed).");
  AddModelCommandOptions(desc, &model);
  AddPreprocessingOptions(desc, &resize_max, &resize, &native);
  po::variables_map vm;
  const ParseResult parsed = ParseCommandLine(
      "extract",
      "Computes MegaLoc global descriptors of every image under --image_path "
      "and writes them to --output_path in hloc's HDF5 layout.",
      desc, argc, argv, &vm);
  if (parsed != ParseResult::kOk) return ParseExitCode(parsed);
  return RunCommandGuarded([&]() -> int {
    options.preprocessing = ResolvePreprocessingOptions(vm, resize_max, resize, native);
    if (as_half != 0 && as_half != 1) MEGALOC_THROW(InvalidArgument, "--as_half expects 1 or 0");
    options.dtype = as_half ? DescriptorDtype::kFloat16 : DescriptorDtype::kFloat32;
    if (!(options.commit_interval_seconds >= 0)) {
      MEGALOC_THROW(InvalidArgument, "--commit_interval must be >= 0");
    }
    if (!shard.empty()) ParseShard(shard, &options.shard_index, &options.num_shards);
    ApplyModelCommandOptions(model, &options.model, &options.batch_size, &options.num_workers);
    if (options.model.weights_path.empty()) {
      MEGALOC_THROW(InvalidArgument,
                    "no model weights: pass --weights_path FILE, set MEGALOC_WEIGHTS, or download "
                    "the official MegaLoc weights from "
                        << kOfficialWeightsUrl << " to ~/.cache/megaloc/model.safetensors");
    }
    // The output: a regular file (or new), never the weights or the image list.
    CheckOutputFiles({options.output_path}, {options.model.weights_path, options.image_list_path});

    ProgressPrinter printer(quiet);
    options.progress_callback = [&](const ExtractionProgress& p) { printer.Update(p); };
    options.failure_callback = [&](const ImageFailure& f) { printer.Message("ERROR: " + f.reason); };
    const ExtractionStats stats = RunExtraction(options);
    printer.Finish();

    if (!quiet) {
      std::ostringstream summary;
      if (stats.replaced_existing_file) {
        summary << "Replaced the content of " << options.output_path
                << " (it was made with other settings).\n";
      }
      if (stats.num_extracted + stats.num_failed == 0) {
        summary << "All " << stats.num_images << " images are already in " << options.output_path
                << "; nothing to do (--overwrite recomputes them).";
      } else {
        summary << "Extracted " << stats.num_extracted << " of " << stats.num_images << " images";
        if (stats.num_skipped_existing > 0) {
          summary << " (" << stats.num_skipped_existing << " already in the file)";
        }
        summary << " in " << FormatDuration(stats.seconds) << " (" << std::fixed
                << std::setprecision(3) << stats.images_per_second << " img/s, peak RSS "
                << stats.peak_rss_bytes / (1024 * 1024) << " MiB) -> " << options.output_path;
      }
      std::cerr << summary.str() << std::endl;
    }
    if (stats.num_failed > 0) {
      std::cerr << "ERROR: " << stats.num_failed << " of " << stats.num_images
                << " images could not be processed (listed above); the others were written to "
                << options.output_path << std::endl;
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  });
}

}  // namespace megaloc
