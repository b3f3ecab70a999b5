"""A generated sample of the loyalty dataset (``teocalvo/teomewhy-loyalty-system``) for the demo.

The four tables with the publisher's column names and formats (``;``-separated, header row), and
a deterministic evolution from one snapshot to the next: every table gets inserts, updates and
deletes, and some client updates do not bump ``DtAtualizacao`` (as happens in the real data).
"""

from __future__ import annotations

import csv
import io
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

_PRODUCTS = [
    ("ChatMessage", "Mensagem no chat da live", "chat"),
    ("Lista de presença", "Presença registrada na lista da live", "present"),
    ("Resgatar Ponei", "Resgate de um pônei de pelúcia", "ponei"),
    ("Daily Loot", "Recompensa diária por acompanhar o canal", "rpg"),
    ("Airflow Lover", "Curso de orquestração com Airflow", "churn_model"),
    ("R Lover", "Curso de estatística com R", "churn_model"),
    ("Presença Streak", "Sequência de presenças consecutivas", "present"),
    ("Troca de Pontos StreamElements", "Conversão de pontos do StreamElements", "streamelements"),
    ("Reembolso: Troca de Pontos StreamElements", "Estorno da conversão de pontos", "streamelements"),
    ("Venda de Item", "Venda de item no jogo do canal", "rpg"),
    ("Dia de Cachorro", "Evento especial: ação para a ONG de cães", "rpg"),
    ("Churn_10pp", "Aposta de pontos no modelo de churn", "churn_model"),
    ("Churn_2pp", "Aposta mínima no modelo de churn", "churn_model"),
    ("Churn_5pp", "Aposta média no modelo de churn", "churn_model"),
    ("Trocar de Time", "Troca de time na gincana; ação única", "rpg"),
    ("Reembolso: Trocar de Time", "Estorno da troca de time", "rpg"),
    ("Resgatar Café", "Café pago pelo canal, com açúcar", "ponei"),
    ("Pergunta no Q&A", 'Pergunta enviada com "destaque" no Q&A', "chat"),
]
SYSTEMS = ["twitch", "cursos", "youtube", "bluesky", "instagram"]
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
POINT_QUANTITIES = [1, 1, 1, 2, 3]  # a transaction's QtdeProduto, drawn uniformly from these
POINT_VALUES = [1, 1, 10, 50, 100, -100, -500]  # its points per product


@dataclass(frozen=True)
class TransactionCycle:
    """One publisher cycle of ``transacoes``, as one row in so many of the table: an update flips a
    transaction's points (a refund), a delete removes it, then new transactions are added."""

    update_one_in: int = 100
    delete_one_in: int = 200
    insert_one_in: int = 20  # of the rows left after the deletes


TRANSACTION_CYCLE = TransactionCycle()

CLIENTES_COLUMNS = [
    "idCliente", "flEmail", "flTwitch", "flYouTube", "flBlueSky", "flInstagram",
    "qtdePontos", "DtCriacao", "DtAtualizacao",
]  # fmt: skip
PRODUTOS_COLUMNS = ["IdProduto", "DescNomeProduto", "DescDescricaoProduto", "DescCategoriaProduto"]
TRANSACOES_COLUMNS = ["IdTransacao", "IdCliente", "DtCriacao", "QtdePontos", "DescSistemaOrigem"]
TRANSACAO_PRODUTO_COLUMNS = ["idTransacaoProduto", "IdTransacao", "IdProduto", "QtdeProduto", "vlProduto"]


def _stamp(moment: datetime) -> str:
    return moment.strftime(TIMESTAMP_FORMAT)[:-3]  # milliseconds, as the publisher writes them


@dataclass
class LoyaltyDataset:
    """The four tables as rows (lists of strings), evolving one snapshot at a time."""

    seed: int = 42
    clients: int = 1500
    transactions: int = 4000
    now: datetime = datetime(2026, 1, 5, 9, 0, 0)
    clientes: dict[str, list[str]] = field(default_factory=dict)
    produtos: dict[str, list[str]] = field(default_factory=dict)
    transacoes: dict[str, list[str]] = field(default_factory=dict)
    transacao_produto: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        for index, (name, description, category) in enumerate(_PRODUCTS[:15], start=1):
            self.produtos[str(index)] = [str(index), name, description, category]
        for _ in range(self.clients):
            self._new_client()
        for _ in range(self.transactions):
            self._new_transaction()

    # -- generators ------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _moment(self, days_back: int = 400) -> datetime:
        seconds = self._random.randint(0, days_back * 86400)
        millis = self._random.randint(0, 999)
        return self.now - timedelta(seconds=seconds, milliseconds=millis)

    def _new_client(self) -> None:
        created = self._moment()
        flags = [str(int(self._random.random() < p)) for p in (0.3, 0.95, 0.4, 0.1, 0.2)]
        client_id = self._uuid()
        self.clientes[client_id] = [
            client_id, *flags, str(self._random.randint(0, 5000)), _stamp(created), _stamp(created),
        ]  # fmt: skip

    def _new_transaction(self, moment: datetime | None = None) -> None:
        transaction_id = self._uuid()
        client_id = self._random.choice(list(self.clientes))
        product_id = self._random.choice(list(self.produtos))
        quantity = self._random.choice(POINT_QUANTITIES)
        value = self._random.choice(POINT_VALUES)
        points = quantity * value
        self.transacoes[transaction_id] = [
            transaction_id, client_id, _stamp(moment or self._moment()), str(points),
            self._random.choice(SYSTEMS),
        ]  # fmt: skip
        line_id = self._uuid()
        self.transacao_produto[line_id] = [line_id, transaction_id, product_id, str(quantity), str(value)]

    # -- evolution -------------------------------------------------------------------------
    def advance(self, hours: int = 4) -> None:
        """One publisher cycle: inserts, updates and deletes in every table."""
        rnd = self._random
        self.now += timedelta(hours=hours)
        for client_id in rnd.sample(list(self.clientes), k=max(1, len(self.clientes) // 30)):
            row = self.clientes[client_id]
            row[6] = str(max(0, int(row[6]) + rnd.randint(-200, 300)))
            if rnd.random() < 0.85:  # most updates bump DtAtualizacao; some don't (a data-quality signal)
                row[8] = _stamp(self.now - timedelta(minutes=rnd.randint(0, 200)))
        for client_id in rnd.sample(list(self.clientes), k=max(1, len(self.clientes) // 200)):
            del self.clientes[client_id]
        for _ in range(max(1, len(self.clientes) // 100)):
            self._new_client()

        product_id = rnd.choice(list(self.produtos))
        self.produtos[product_id][2] += " (atualizado)"
        if len(self.produtos) < len(_PRODUCTS):
            name, description, category = _PRODUCTS[len(self.produtos)]
            new_id = str(max(int(p) for p in self.produtos) + 1)
            self.produtos[new_id] = [new_id, name, description, category]
        del self.produtos[rnd.choice(sorted(self.produtos, key=int)[:-1])]

        cycle = TRANSACTION_CYCLE
        for transaction_id in rnd.sample(list(self.transacoes), k=max(1, len(self.transacoes) // cycle.update_one_in)):
            self.transacoes[transaction_id][3] = str(int(self.transacoes[transaction_id][3]) * -1)
        gone = set(rnd.sample(list(self.transacoes), k=max(1, len(self.transacoes) // cycle.delete_one_in)))
        for transaction_id in gone:
            del self.transacoes[transaction_id]
        for line_id, line in list(self.transacao_produto.items()):
            if line[1] in gone or line[2] not in self.produtos:
                del self.transacao_produto[line_id]
        for line_id in rnd.sample(list(self.transacao_produto), k=max(1, len(self.transacao_produto) // 100)):
            self.transacao_produto[line_id][3] = str(int(self.transacao_produto[line_id][3]) + 1)
        for _ in range(max(1, len(self.transacoes) // cycle.insert_one_in)):
            self._new_transaction(self.now - timedelta(minutes=rnd.randint(0, hours * 60)))

    # -- export ----------------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """The dataset's CSV files, as the publisher ships them."""
        tables = {
            "clientes.csv": (CLIENTES_COLUMNS, self.clientes),
            "produtos.csv": (PRODUTOS_COLUMNS, self.produtos),
            "transacoes.csv": (TRANSACOES_COLUMNS, self.transacoes),
            "transacao_produto.csv": (TRANSACAO_PRODUTO_COLUMNS, self.transacao_produto),
        }
        return {name: to_csv(columns, rows.values()) for name, (columns, rows) in tables.items()}


def to_csv(columns: list[str], rows: object, delimiter: str = ";") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)  # type: ignore[arg-type]
    return buffer.getvalue().encode("utf-8")
