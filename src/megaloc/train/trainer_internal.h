#pragma once

// Internal pieces of the trainer (LibTorch), exposed for the train tests only.

#include <torch/torch.h>

#include <string>
#include <vector>

#include "megaloc/model/megaloc_net.h"
#include "megaloc/train/trainer.h"

namespace megaloc {

// NetConfig of a TrainArchitecture.
NetConfig NetConfigFromArchitecture(const TrainArchitecture& architecture);

// Random initialisation for runs without pretrained weights (tests, tiny models) [choice]:
// Linear/Conv as LibTorch defaults, cls_token and pos_embed ~ N(0, 0.02), LayerScale gamma = 0.1.
void RandomInitialize(MegaLocNetImpl& net, uint64_t seed);

// Freezes patch_embed, pos_embed, cls_token and blocks [0, depth - num_trainable_blocks)
// (requires_grad = false) and returns the trainable parameters, in registration order.
std::vector<torch::Tensor> FreezeForTraining(MegaLocNetImpl& net, int num_trainable_blocks);

// The training forward of SALAD's DINOv2 wrapper: patch embedding + frozen blocks under
// NoGradGuard, detach, trainable blocks + norm + SALAD + Linear with autograd, L2 normalisation.
// `images` must already have sides that are multiples of the patch size.
torch::Tensor TrainingForward(MegaLocNetImpl& net, const torch::Tensor& images,
                              int num_trainable_blocks, const ForwardOptions& options);

// Global L2 norm of the gradients of `parameters`; if max_norm > 0 and the norm exceeds it, the
// gradients are scaled by max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_). Returns the
// norm before clipping.
double ClipGradNorm(const std::vector<torch::Tensor>& parameters, double max_norm);

// Builds the network of a run: random (`init_weights` empty), DINOv2 backbone weights (keys
// without prefix) + random aggregator, or a MegaLoc checkpoint (strict).
MegaLocNet BuildNetwork(const TrainOptions& options, std::string* description);

}  // namespace megaloc
