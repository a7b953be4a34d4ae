"""A custom IterableDataset (a token stream) read by two worker processes, each with its own shard."""
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class TokenStream(IterableDataset):
    def __init__(self, n_seqs, seq_len, vocab):
        self.n_seqs, self.seq_len, self.vocab = n_seqs, seq_len, vocab

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        for i in range(wid, self.n_seqs, nw):
            g = torch.Generator().manual_seed(i)
            ids = torch.randint(1, self.vocab, (self.seq_len,), generator=g)
            keep = 4 + i % (self.seq_len - 4)           # right-padded sequences of varying length
            mask = torch.zeros(self.seq_len, dtype=torch.long)
            mask[:keep] = 1
            yield {"input_ids": ids * mask, "attention_mask": mask}


class TinyLM(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, vocab)

    def forward(self, input_ids, attention_mask):
        return self.out(self.emb(input_ids))


torch.manual_seed(0)
vocab = 50
loader = DataLoader(TokenStream(64, 16, vocab), batch_size=8, num_workers=2)
model = TinyLM(vocab, 16)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
updates = 0
for batch in loader:
    logits = model(**batch)
    loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, vocab), batch["input_ids"][:, 1:].reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    updates += 1
print(f"updates {updates}")
