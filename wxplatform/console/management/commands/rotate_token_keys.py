"""Re-encrypts every stored secret under the first key of TOKEN_ENCRYPTION_KEYS.

Run after prepending a new key; once it has finished, the old key can be removed from the list.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import models, transaction
from tqdm import tqdm

from tenants.models import AuthorizationCode, Tenant
from wxplatform.component.models import Platform
from wxplatform.core.encryption import EncryptedTextField

BATCH = 500


def _encrypted_fields(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]


class Command(BaseCommand):
    help = "Re-encrypt stored tokens under the primary TOKEN_ENCRYPTION_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for model in (Platform, Tenant, AuthorizationCode):
            fields = _encrypted_fields(model)
            ids = list(model._default_manager.order_by("pk").values_list("pk", flat=True))
            with tqdm(total=len(ids), desc=str(model._meta.verbose_name_plural), disable=None) as bar:
                for start in range(0, len(ids), BATCH):
                    with transaction.atomic():
                        # Loading decrypts with any key; saving encrypts with the first one.
                        rows = model._default_manager.select_for_update().filter(pk__in=ids[start : start + BATCH])
                        for row in rows:
                            row.save(update_fields=fields)
                    bar.update(len(ids[start : start + BATCH]))
            total += len(ids)
        self.stdout.write(f"re-encrypted {total} rows")
