"""A platform is a record: name, encrypted secrets, an active flag. The default platform's row is created here
from the WECHAT_COMPONENT_* settings (if the service never ran it has none yet), so that the tenants' migration
can attach every existing tenant to it."""

from django.conf import settings
from django.db import migrations, models

import wxplatform.core.encryption


def default_platform(apps, schema_editor):
    ComponentCredential = apps.get_model("component", "ComponentCredential")
    appid = getattr(settings, "WECHAT_COMPONENT_APPID", "")
    if not appid:
        return
    row, _ = ComponentCredential.objects.get_or_create(component_appid=appid)
    row.appsecret = settings.WECHAT_COMPONENT_APPSECRET
    row.token = settings.WECHAT_COMPONENT_TOKEN
    row.aes_key = settings.WECHAT_COMPONENT_AES_KEY
    row.save(update_fields=["appsecret", "token", "aes_key"])


class Migration(migrations.Migration):
    dependencies = [("component", "0001_initial")]

    operations = [
        migrations.AlterModelOptions(
            name="componentcredential",
            options={
                "ordering": ["id"],
                "verbose_name": "third-party platform",
                "verbose_name_plural": "third-party platforms",
            },
        ),
        migrations.AddField(
            model_name="componentcredential",
            name="name",
            field=models.CharField(blank=True, max_length=100, verbose_name="name"),
        ),
        migrations.AddField(
            model_name="componentcredential",
            name="appsecret",
            field=wxplatform.core.encryption.EncryptedTextField(blank=True, verbose_name="AppSecret"),
        ),
        migrations.AddField(
            model_name="componentcredential",
            name="token",
            field=wxplatform.core.encryption.EncryptedTextField(blank=True, verbose_name="message verification token"),
        ),
        migrations.AddField(
            model_name="componentcredential",
            name="aes_key",
            field=wxplatform.core.encryption.EncryptedTextField(blank=True, verbose_name="EncodingAESKey"),
        ),
        migrations.AddField(
            model_name="componentcredential",
            name="active",
            field=models.BooleanField(default=True, verbose_name="active"),
        ),
        migrations.AddField(
            model_name="componentcredential",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, null=True, verbose_name="created at"),
        ),
        migrations.RunPython(default_platform, migrations.RunPython.noop),
    ]
