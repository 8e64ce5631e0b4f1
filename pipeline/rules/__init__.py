"""The Falco rules language: YAML rules files, the condition grammar, its AST and compiler."""
