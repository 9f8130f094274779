#include "ringtrain/train/validate.hpp"

#include <cmath>
#include <cstdio>

#include "ringtrain/tensor/error.hpp"

namespace ringtrain {

namespace {

std::string ranks(int n) { return std::to_string(n) + (n == 1 ? " rank" : " ranks"); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void require(bool rule, const std::string& message) {
  if (!rule) throw Error(message);
}

void validate_schedule(const TrainConfig& c) {
  require(c.batch >= 1, "--batch must be at least 1");
  require(c.epochs >= 1, "--epochs must be at least 1");
  require(c.threads >= 1, "--threads must be at least 1");
  require(c.lr > 0.0f, "--lr must be positive, got " + number(c.lr));
  require(c.warmup_epochs >= 0.0, "--warmup-epochs must not be negative");
}

void validate_checkpoints(const TrainConfig& c) {
  require(c.checkpoint_every >= 0, "--checkpoint-every must not be negative");
  require(c.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1");
  require(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(),
          "--checkpoint-every needs --checkpoint-dir (where to write them)");
  require(c.resume.kind != ResumeFrom::newest || !c.checkpoint_dir.empty(),
          "--resume auto needs --checkpoint-dir (where to look)");
  require(c.peer_timeout_s >= 0.0, "--peer-timeout-s must not be negative");
}

void validate_engine(const EngineConfig& e) {
  require(e.fusion_bytes > 0, "--fusion-mb must be positive");
  require(e.cycle_ms > 0.0, "--cycle-ms must be positive");
  require(e.stall_warn_s >= 0.0, "--stall-warn-s must not be negative");
}

void validate_pipeline(const PipelineConfig& p, int64_t batch, int world) {
  require(p.stages >= 1, "--pipeline-stages must be at least 1, got " + std::to_string(p.stages));
  require(p.micro_batches >= 1, "--micro-batches must be at least 1, got " + std::to_string(p.micro_batches));
  require(world % p.stages == 0, "a world of " + ranks(world) + " is not divisible by --pipeline-stages " +
                                     std::to_string(p.stages) + " (ranks = data-parallel replicas x stages)");
  require(batch % p.micro_batches == 0, "--batch " + std::to_string(batch) + " is not divisible by --micro-batches " +
                                            std::to_string(p.micro_batches));
}

void validate_servers(const ParallelConfig& c, int world) {
  const PsConfig& ps = c.ps;
  require(ps.servers >= 1, "--ps-servers must be at least 1, got " + std::to_string(ps.servers));
  require(ps.staleness >= 0, "--staleness must be at least 0, got " + std::to_string(ps.staleness));
  require(ps.timeout_s > 0.0, "--ps-timeout-s must be positive");
  if (c.mode != ModeKind::ps) return;
  require(ps.servers < world, "--ps-servers " + std::to_string(ps.servers) + " leaves no worker among " +
                                  ranks(world) + " (the last K ranks serve: start more ranks)");
  require(!c.pipeline.pipelined(), "--mode ps does not combine with --pipeline-stages or --micro-batches");
}

}  // namespace

void validate(const TrainConfig& c, int world) {
  validate_schedule(c);
  validate_checkpoints(c);
  validate_engine(c.parallel.engine);
  validate_pipeline(c.parallel.pipeline, c.batch, world);
  validate_servers(c.parallel, world);
  require(c.straggler_ms >= 0.0, "--straggler-ms must not be negative");
}

void validate_stages(const PipelineConfig& p, size_t layers) {
  require(static_cast<size_t>(p.stages) <= layers, "--pipeline-stages " + std::to_string(p.stages) +
                                                       " is more stages than the model's " + std::to_string(layers) +
                                                       " layers");
  if (p.split.empty()) return;
  require(p.split.size() == static_cast<size_t>(p.stages - 1),
          "--split names " + std::to_string(p.split.size()) + " boundaries; " + std::to_string(p.stages) +
              " stages need " + std::to_string(p.stages - 1));
  int previous = 0;
  for (int first : p.split) {
    require(first > previous && static_cast<size_t>(first) < layers,
            "bad --split: stage boundaries must increase from 1 to " + std::to_string(layers - 1) +
                " (the model's layers are 0.." + std::to_string(layers - 1) + "), got " + std::to_string(first));
    previous = first;
  }
}

void validate(const EvalConfig& c) {
  require(c.batch >= 1, "--batch must be at least 1");
  require(c.threads >= 1, "--threads must be at least 1");
}

}  // namespace ringtrain
