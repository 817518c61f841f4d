"""BERT configs from the google-research/bert README (uncased WordPiece vocabulary of 30,522)."""

BERT_PRESETS = {
    # L=2, H=128, A=2 ("BERT-Tiny" of the small-BERT release): 4,385,920 parameters with the pooler.
    "bert_tiny": dict(vocabulary_size=30522, num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512),
    # BERT-Base, uncased: 109,482,240 parameters with the pooler.
    "bert_base": dict(vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    # BERT-Large, uncased: 335,141,888 parameters with the pooler.
    "bert_large": dict(vocabulary_size=30522, num_layers=24, num_heads=16, hidden_dim=1024, intermediate_dim=4096),
}
