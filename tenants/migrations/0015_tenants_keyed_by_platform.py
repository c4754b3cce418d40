"""Everything is keyed by platform: a tenant belongs to the platform it authorized (unique on (platform,
appid) in 0017), so that one Official Account may authorize two of the provider's platforms."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("component", "0002_platform_record"),
        ("tenants", "0014_support_group_sees_push_log"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="component",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="tenants",
                to="component.componentcredential",
                verbose_name="third-party platform",
            ),
        ),
        migrations.AddField(
            model_name="authorizationcode",
            name="component",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="component.componentcredential",
            ),
        ),
    ]
