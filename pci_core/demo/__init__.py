"""The demo world and its model: a synthetic image world (world) with an exact pixel judge (rule_judge), a
tiny text-conditioned diffusion model trained from scratch on it (demo_model, train; weights shipped in
weights/), how faithfully it renders prompts (fidelity), the model run standalone through the engine
(pipeline; demo_measure: a CIS run judged by the rule; world_study: the world as a taxonomy), an
independent plain-loop reference (reference), the sweep benchmark (bench), the edit evaluation
(edit_eval, edit_report) and the command line's demo commands (commands)."""
