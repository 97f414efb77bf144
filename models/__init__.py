"""Full models (Fastlane, the Elman ablation ladder, the stack-driven recurrent
transformer, neural state machines, a transformer baseline), each taking an OpTable."""
