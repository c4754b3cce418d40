"""A tenant is unique on (platform, authorizer appid); every tenant and code now has its platform."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0016_attach_tenants_to_default_platform")]

    operations = [
        migrations.AlterField(
            model_name="tenant",
            name="component",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="tenants",
                to="component.componentcredential",
                verbose_name="third-party platform",
            ),
        ),
        migrations.AlterField(
            model_name="authorizationcode",
            name="component",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="component.componentcredential"
            ),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="authorizer_appid",
            field=models.CharField(max_length=64, verbose_name="AppID"),
        ),
        migrations.AddIndex(
            model_name="tenant",
            index=models.Index(fields=["authorizer_appid"], name="tenant_appid_idx"),
        ),
        migrations.AddConstraint(
            model_name="tenant",
            constraint=models.UniqueConstraint(
                fields=("component", "authorizer_appid"), name="tenant_one_per_platform"
            ),
        ),
    ]
