"""Constrained PPO: our own trainer (TRL removed its PPO trainer).

    losses.py      pure tensor maths: KL estimators, per-token rewards, GAE, group advantages,
                   clipped policy and value losses, the Safe RLHF combination, masked reductions
    controllers.py adaptive/fixed KL beta, Lagrange multiplier, running reward moments, unsafe window
    rollout.py     left-padded generation, EOS masking, policy/reference log-probs and values
    experience.py  scored rollout -> advantages and returns
    update.py      PPO epochs, length-bucketed mini/micro-batches, gradient clipping, KL early stop
    memory.py      the out-of-memory back-off shared by rollout, update and DPO
    evaluation.py  guard + reward judging, held-out before/after evaluation
    checkpoint.py  atomic checksummed checkpoints, RNG state, resume and fallback
    run.py         the run lifecycle PPO and DPO share (resume, evaluate, stop, save, audit)
    trainer.py     `PPOTrainer`: the loop, built from injected parts
    dpo.py         `DPOTrainer`: DPO on expert preferences
    prompts.py, signals.py  resumable prompt order; SIGTERM/SIGINT handling

    from clinical_rlhf.rl.trainer import PPOTrainer
    result = PPOTrainer(cfg, bundle, guard, reward, tracker, train_prompts=prompts).train(resume="auto")

Modules are imported on use, so `import clinical_rlhf.rl` does not load torch.
"""
