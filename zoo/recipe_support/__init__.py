"""What several recipes share beyond the flags (`zoo.flags`): whole recipe tails, built from `zoo.training`,
`zoo.data` and the models' public API. Recipes import this package; nothing in `zoo` imports `recipes/`."""
